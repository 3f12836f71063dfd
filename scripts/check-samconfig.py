"""Checks infra/samconfig.toml against infra/template.yaml: every environment names a stack,
deploys with CAPABILITY_IAM (the template creates IAM roles), and overrides only parameters
the template declares, with values its AllowedValues accept.

Usage: check-samconfig.py SAMCONFIG TEMPLATE
"""

import shlex
import sys
import tomllib

from cfnlint.decode import decode


def main() -> int:
    samconfig_path, template_path = sys.argv[1:3]
    with open(samconfig_path, "rb") as f:
        config = tomllib.load(f)
    template, matches = decode(template_path)
    if matches:
        print(*matches, sep="\n", file=sys.stderr)
        return 1
    parameters = template.get("Parameters", {})
    problems = []
    environments = [k for k, v in config.items() if isinstance(v, dict)]
    for env in environments:
        section = config[env]
        if not section.get("global", {}).get("parameters", {}).get("stack_name"):
            problems.append(f"[{env}] has no stack_name")
        deploy = section.get("deploy", {}).get("parameters", {})
        if "CAPABILITY_IAM" not in deploy.get("capabilities", ""):
            problems.append(f"[{env}.deploy] capabilities must include CAPABILITY_IAM")
        for pair in shlex.split(deploy.get("parameter_overrides", "")):
            name, _, value = pair.partition("=")
            if name not in parameters:
                problems.append(f"[{env}.deploy] overrides unknown parameter {name}")
                continue
            allowed = parameters[name].get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                problems.append(f"[{env}.deploy] {name}={value} is not one of {allowed}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"samconfig ok: environments {', '.join(environments)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
