#!/bin/bash
# Large-model figures (benches/RESULTS.md, "Large models"): start, reloads
# for a parameter edit and for new weights, RSS steady and peak, and an
# in-place overwrite of the running weights. Needs python3 with numpy and
# onnx, and about 4 GB of disk in DIR.
#
#   benches/large_model.sh [DIR]          # default /tmp/wgraph-large-model
set -eu
W=${WGRAPH:-$(cd "$(dirname "$0")/.." && pwd)/target/release/wgraph}
DIR=${1:-/tmp/wgraph-large-model}
mkdir -p "$DIR"
[ -f "$DIR/dit.onnx" ] || python3 "$(dirname "$0")/large_model.py" "$DIR/dit.onnx"
cd "$DIR"
cp dit.onnx.data same.data
cat > dit.world <<'G'
world { fps = 2 }
model dit = "dit.onnx" { role = denoiser }
node x: constant { shape = [1, 16, 1024], value = 0.1 }
node net: model { model = dit }
node out: npy_dump { dir = "o" }
x.out -> net.x
net.y -> out.tensor
G
rss() { grep VmRSS "/proc/$1/status"; }
/usr/bin/time -f "start-to-exit %e s, max RSS %M KiB" "$W" run dit.world --frames 1 --fps 0 -q 2>&1 | tail -1
"$W" run dit.world --watch --fps 2 2> watch.err &
pid=$!
until grep -q watching watch.err; do sleep 0.05; done
sleep 5; echo "steady after load: $(rss $pid)"
sed -i 's/value = 0.1/value = 0.2/' dit.world; sleep 4
echo '// a comment' >> dit.world; sleep 4
touch dit.world; sleep 4
echo "after parameter edits: $(rss $pid)"
cp same.data new.data; printf '\x01\x02\x03\x04' | dd of=new.data bs=1 seek=4096 conv=notrunc 2>/dev/null; mv new.data dit.onnx.data
until [ "$(grep -c 'models reloaded' watch.err)" -ge 1 ]; do sleep 0.2; done; sleep 6
echo "after a weights change: $(rss $pid)"
cp same.data new.data; mv new.data dit.onnx.data
until [ "$(grep -c 'models reloaded' watch.err)" -ge 2 ]; do sleep 0.2; done; sleep 6
echo "after a second weights change: $(rss $pid)"
cp same.data dit.onnx.data   # in place, the same bytes, while it runs
sleep 15
echo "after an in-place cp: $(rss $pid)"
echo "peak: $(grep VmHWM /proc/$pid/status)"
kill -INT $pid; wait $pid; echo "exit $?"
grep -E '^(reloaded|reload failed|note: model|[0-9]+ ticks)' watch.err
