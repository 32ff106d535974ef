"""What CloudFormation does to a template value before EC2 sees it, for the values our
templates use: `Ref`, `Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::GetAtt`, `Fn::Base64`
(returned decoded: it is the text EC2 hands cloud-init), pseudo parameters, and the CDK
asset manifest's `${AWS::AccountId}`-style placeholders.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html
"""

from __future__ import annotations

import re
from typing import Any

SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class Unresolved(KeyError):
    """A reference the test gave no value for."""


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """`refs` maps logical ids and pseudo parameters (`AWS::Region`) to their values, and
    `Logical.Attribute` to a `Fn::GetAtt`."""
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: resolve(item, refs) for key, item in value.items()}
    ((function, argument),) = value.items()
    if function == "Ref":
        return _lookup(refs, argument)
    if function == "Fn::GetAtt":
        name = argument if isinstance(argument, str) else ".".join(argument)
        return _lookup(refs, name)
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(str(item) for item in resolve(items, refs))
    if function == "Fn::Select":
        index, items = argument
        return resolve(items, refs)[int(index)]
    if function == "Fn::Base64":
        return resolve(argument, refs)
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        scope = refs | {k: str(resolve(v, refs)) for k, v in variables.items()}
        return substitute(text, scope)
    if function.startswith("Fn::"):
        raise NotImplementedError(function)
    return {function: resolve(argument, refs)}


def substitute(text: str, refs: dict[str, str]) -> str:
    """`${Name}` and `${Logical.Attribute}` in `text`; `${!Literal}` stays `${Literal}`."""
    return SUB.sub(lambda match: _lookup(refs, match.group(1)), text).replace("${!", "${")


def _lookup(refs: dict[str, str], name: str) -> str:
    if name not in refs:
        raise Unresolved(f"no test value for {name}")
    return refs[name]
