#!/usr/bin/env bash
# Installs the system packages hiergym needs, only those that are missing:
#   python3-venv  when the system python3 cannot make a virtualenv (stock Debian/Ubuntu)
#   iverilog, yosys  the RTL domain's toolchain (the benchmark and the tests)
#   postgresql  the cache-on-Postgres tests (only with the argument "test")
# Usage: install-system-deps.sh [bench|test]   (default: test)
set -euo pipefail
purpose="${1:-test}"
python="${SYSTEM_PYTHON:-python3}"
need=()
if ! "$python" -c "import ensurepip, venv" >/dev/null 2>&1; then
  need+=("python3-venv")
fi
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
command -v yosys >/dev/null 2>&1 || need+=(yosys)
if [ "$purpose" = "test" ] && ! command -v initdb >/dev/null 2>&1 \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "hiergym: installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
