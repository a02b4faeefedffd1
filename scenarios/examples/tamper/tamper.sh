#!/bin/sh
# Between the dump and the restore: data.txt's position in the images set from 4 to 0, with
# criu's own image tool (crit decode, edit the JSON, crit encode).
set -e
img="$CRTEST_IMAGES/files.img"
crit decode -i "$img" -o files.json
python3 - <<'PY'
import json
d = json.load(open("files.json"))
hit = [e for e in d["entries"] if e.get("reg", {}).get("name", "").endswith("/data.txt")]
assert len(hit) == 1, f"data.txt in files.img: {len(hit)} entries"
hit[0]["reg"]["pos"] = 0
json.dump(d, open("files.json", "w"))
PY
crit encode -i files.json -o "$img"
