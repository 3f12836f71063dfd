# Sourced by the infra scripts: puts the pinned tools of .local/infra-tools (cfn-lint,
# cargo-lambda) and zig (shipped inside the ziglang wheel) on PATH.
INFRA_VENV="$(pwd)/.local/infra-tools"
ZIG_DIR="$("$INFRA_VENV/bin/python" -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')"
export PATH="$INFRA_VENV/bin:$ZIG_DIR:$PATH"
