"""Database: RDS MySQL 8.4, private and encrypted, TLS required, credentials generated in
Secrets Manager and rotated, automated backups, logs in CloudWatch. Its logical IDs are
pinned by a test: renaming them would replace the database."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from deployment.database_version import engine_version

DATABASE_NAME = "skybridge"


class Database(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        instance_class: str,
        multi_az: bool,
        allocated_storage_gib: int,
        backup_retention_days: int,
        production: bool,
        version: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.version = engine_version(version)
        engine = rds.DatabaseInstanceEngine.mysql(
            version=rds.MysqlEngineVersion.of(self.version, self.version.rsplit(".", 1)[0])
        )
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="skybridge: TLS only, UTC, utf8mb4, slow queries logged",
            parameters={
                # 1, as AWS documents it for MySQL 8.4 (not "ON").
                "require_secure_transport": "1",
                # The slow-query log is exported to CloudWatch: turn it on, to a file
                # (the export reads files, not the mysql.slow_log table).
                "slow_query_log": "1",
                "long_query_time": "1",
                "log_output": "FILE",
                "time_zone": "UTC",
                "character_set_server": "utf8mb4",
                "collation_server": "utf8mb4_0900_ai_ci",
            },
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(instance_class.removeprefix("db.")),
            vpc=vpc,
            vpc_subnets=subnets,
            multi_az=multi_az,
            allocated_storage=allocated_storage_gib,
            max_allocated_storage=allocated_storage_gib * 4,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            publicly_accessible=False,
            database_name=DATABASE_NAME,
            credentials=rds.Credentials.from_generated_secret("skybridge"),
            parameter_group=parameters,
            backup_retention=Duration.days(backup_retention_days),
            deletion_protection=production,
            removal_policy=RemovalPolicy.SNAPSHOT if production else RemovalPolicy.DESTROY,
            delete_automated_backups=not production,
            cloudwatch_logs_exports=["error", "slowquery"],
            cloudwatch_logs_retention=logs.RetentionDays.ONE_MONTH,
            auto_minor_version_upgrade=True,
            enable_performance_insights=False,
            monitoring_interval=Duration.seconds(60),
            iam_authentication=False,
        )
        self.instance.add_rotation_single_user(automatically_after=Duration.days(30))
        assert self.instance.secret is not None
        self.secret = self.instance.secret
        self.connections = self.instance.connections
