#!/usr/bin/env bash
# Prove that the Vagrantfile provisions the reference lab: `vagrant up --provider=docker` (which runs
# site.yml once, from node2, against both machines), then the runbook checks of playbooks/smoke.yml
# against the same machines, then `vagrant destroy -f`. `make test` runs it.
#
# It keeps its Vagrant state in .cache/vagrant-check, not in .vagrant, so that it never touches the
# machines of a developer's own `vagrant up`; its containers and network (192.168.58.0/24) do not
# collide with `make lab` or the Molecule lab scenario either.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export VAGRANT_DOTFILE_PATH="$root/.cache/vagrant-check"
export VAGRANT_DEFAULT_PROVIDER=docker VAGRANT_CHECKPOINT_DISABLE=1

if ! command -v vagrant >/dev/null; then
  echo "vagrant is not installed: 'make deps' installs Debian's vagrant package" >&2
  exit 1
fi
images/vagrant/build.sh

destroy() { vagrant destroy --force >/dev/null 2>&1 || true; }
trap destroy EXIT
destroy  # what an interrupted earlier run left behind

started=$SECONDS
echo "=== vagrant up --provider=docker (provisions the lab with site.yml)"
vagrant up --provider=docker
echo "=== vagrant up took $((SECONDS - started)) s"

# The inventory Vagrant generated (how to reach each machine, its groups and address) plus the
# lab's group_vars: exactly what the provisioner used.
echo "=== playbooks/smoke.yml against the Vagrant machines"
ansible-playbook -i "$VAGRANT_DOTFILE_PATH/provisioners/ansible/inventory" -i inventories/vagrant playbooks/smoke.yml
echo "=== The Vagrant lab passed the runbook in $((SECONDS - started)) s"
