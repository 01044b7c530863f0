#!/usr/bin/env bash
# Install and start the service: embedded store, demo audit trail, http://localhost:${PORT:-8000}/docs
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
if [ ! -f .env ]; then
  cp .env.example .env
  key=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')
  password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
  sed -i.bak -e "s|^SECRET_KEY=.*|SECRET_KEY=$key|" -e "s|^ADMIN_PASSWORD=.*|ADMIN_PASSWORD=$password|" .env
  rm -f .env.bak
  echo "Created .env: admin account 'admin', password '$password'"
fi
exec .venv/bin/python main.py
