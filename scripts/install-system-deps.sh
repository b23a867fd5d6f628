#!/usr/bin/env bash
# Installs the system packages hiergym needs, only those that are missing:
#   python3-venv  when the system python3 cannot make a virtualenv (stock Debian/Ubuntu)
#   iverilog, yosys  the RTL domain's toolchain (the benchmark and the tests)
#   postgresql  the cache-on-Postgres tests (only with the argument "test")
#   chromium    the report.html browser test (only with "test"; where the package cannot be had,
#               e.g. Ubuntu's snap-only chromium, the test skips and says why)
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
browser=0
if [ "$purpose" = "test" ] && ! command -v chromium >/dev/null 2>&1 \
    && ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  browser=1
fi
[ ${#need[@]} -eq 0 ] && [ "$browser" -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  echo "hiergym: installing system packages: ${need[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$browser" -eq 1 ]; then
  echo "hiergym: installing chromium (the report.html browser test)"
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "hiergym: chromium could not be installed; the browser test will be skipped" >&2
fi
