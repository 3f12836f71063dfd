"""Runs the real SAM transform (aws-sam-translator, the library behind `sam validate` and
CloudFormation's AWS::Serverless transform) on a template, offline.

Usage: sam-translate.py TEMPLATE [OUT.json]

Exits non-zero with the transform's own messages when SAM would reject the template
(e.g. a misspelt event Type or an invalid Auth block), which cfn-lint's schema checks miss.
With OUT.json, writes the generated CloudFormation template there.
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


class NoManagedPolicies:
    """The template attaches no managed policies by name, so nothing needs to be looked up in IAM."""

    def load(self):
        return {}


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    template, matches = decode(sys.argv[1])
    if matches:
        for match in matches:
            print(match, file=sys.stderr)
        return 1
    # `sam build` replaces local CodeUri paths with the built artifacts' S3 locations; the
    # transform only accepts the latter, so stand one in (as `sam validate` does).
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(
            properties.get("CodeUri"), str
        ) and not properties["CodeUri"].startswith("s3://"):
            properties["CodeUri"] = "s3://bucket/" + properties["CodeUri"].strip("./")
    # The transform asks boto for the region; no credentials or network are used.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translator = Translator(managed_policy_map=None, sam_parser=Parser())
    try:
        output = translator.translate(
            sam_template=template,
            parameter_values={"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
                              "AWS::Partition": "aws", "AWS::StackName": "vitals"},
            get_managed_policy_map=NoManagedPolicies().load,
        )
    except InvalidDocumentException as err:
        for cause in err.causes:
            print(f"SAM transform error: {cause.message}", file=sys.stderr)
        return 1
    resources = output.get("Resources", {})
    print(f"SAM transform ok: {len(resources)} CloudFormation resources")
    if len(sys.argv) == 3:
        with open(sys.argv[2], "w") as out:
            json.dump(output, out, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
