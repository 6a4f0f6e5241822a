#!/usr/bin/env bash
# Takes a fresh Debian machine (CPU, or CUDA with torch already installed) to a working pvm-mbrl install.
# Idempotent: every step checks before it acts, so re-running it is cheap.
#   bash scripts/setup.sh            # system packages + .venv + pinned Python packages + pvm-mbrl
# Environment:
#   PVM_MBRL_VENV   where the virtual environment lives (default: <repo>/.venv)
#   PVM_MBRL_SKIP_APT=1   skip the system packages (no root, or already installed)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PVM_MBRL_VENV:-$repo/.venv}"
torch_version="2.13.0"

log() { printf '[setup] %s\n' "$*"; }

# --- system packages: software OpenGL for MuJoCo's offscreen rendering (EGL / OSMesa) ---------------
apt_packages=(libegl1 libgl1 libegl-mesa0 libgles2 libosmesa6 libglfw3 ffmpeg)
if [[ "${PVM_MBRL_SKIP_APT:-0}" != "1" ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo_cmd=""; [[ "$(id -u)" != "0" ]] && sudo_cmd="sudo"
    log "installing system packages: ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "system packages present"
  fi
fi

# --- virtual environment ---------------------------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating virtual environment $venv"
  # On a CUDA machine the system's CUDA torch is reused through system site-packages.
  if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python3 -m venv --system-site-packages "$venv"
  else
    python3 -m venv "$venv"
  fi
fi
py="$venv/bin/python"
"$py" -m pip install -q --upgrade "pip>=24" 2>/dev/null || true

# --- torch first, so no dependency pulls a CUDA build onto a CPU machine ---------------------------
if ! "$py" -c "import torch" 2>/dev/null; then
  log "installing torch==$torch_version (CPU wheel)"
  "$py" -m pip install -q "torch==$torch_version"
else
  log "torch present: $("$py" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
fi

# --- pinned Python packages and the project itself ------------------------------------------------
log "installing pinned requirements and pvm-mbrl (editable)"
"$py" -m pip install -q -r "$repo/requirements.txt"
"$py" -m pip install -q --no-deps -e "$repo"

# --- check: MuJoCo can render offscreen with the chosen GL backend ---------------------------------
"$py" - <<'EOF'
from pvm_mbrl.envs.rendering import check_offscreen_rendering
print("[setup] offscreen rendering:", check_offscreen_rendering())
EOF
log "done. Activate with: source $venv/bin/activate"
