"""Print the lab's nodes, one "name address group,group" line each, read from the lab inventory.

The inventory is the one source of truth for node names and addresses: scripts/lab-up.sh creates
one container per host it lists, at the host's mesolite_address.
"""

import json
import subprocess
import sys

inventory = sys.argv[1] if len(sys.argv) > 1 else "inventories/lab"
listing = json.loads(subprocess.check_output(["ansible-inventory", "-i", inventory, "--list"]))
groups_of: dict[str, list[str]] = {}
for group, members in listing.items():
    if group not in ("_meta", "all", "ungrouped"):
        for host in members.get("hosts", []):
            groups_of.setdefault(host, []).append(group)

for name, variables in sorted(listing["_meta"]["hostvars"].items()):
    address = variables.get("mesolite_address")
    if not address:
        sys.exit(f"{inventory}: host {name} has no mesolite_address; the lab needs one per node")
    print(name, address, ",".join(sorted(groups_of.get(name, []))) or "-")
