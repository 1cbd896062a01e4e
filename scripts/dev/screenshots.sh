#!/usr/bin/env bash
# Remakes the screenshots in docs/: the real app under Xvfb, driven by a script, chatting with
# the bundled demo model (assets/wordnet-chat): its real replies, greedy so that a rerun gives
# the same pictures. Needs a build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${BUILD_DIR:-build}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/shots.script" <<SCRIPT
wait-model
new-chat
set temperature 0
send What does harbor mean?
wait-reply
send What is the opposite of cold?
wait-reply
send What kind of thing is a violin?
wait-reply
frames 3
screenshot docs/chat.png
search opposite
frames 3
screenshot docs/search.png
search
open settings
frames 3
screenshot docs/settings.png
close
open conversation-settings
frames 3
screenshot docs/conversation-settings.png
close
frames 1
quit
SCRIPT
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/chats.db" --model assets/wordnet-chat \
  --script "$work/shots.script"
# The welcome a first start without a model shows, over the bundled demo model.
printf 'wait-model\nframes 3\nscreenshot docs/welcome.png\nquit\n' >"$work/welcome.script"
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/welcome.db" --script "$work/welcome.script"
# The screen a damaged database gets.
echo "not an SQLite database, but somebody's file" >"$work/damaged.db"
printf 'frames 3\ndatabase check\nframes 3\nscreenshot docs/damaged-database.png\nquit\n' >"$work/damaged.script"
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/damaged.db" --script "$work/damaged.script"
# A reply's attention beside the chat: layer 3, head 1 on the log scale, a cell pointed at; then
# zoomed in with a token of the reply chosen (the chat's text shaded by what it attends to); the
# first token of the reply's "harbor" shading what attends to it; every layer and head.
cat >"$work/attention.script" <<SCRIPT
wait-model
new-chat
set temperature 0
send What does harbor mean?
wait-reply
attention open 1
attention layer 3
attention head 1
wait-attention
attention scale log
attention hover 40 27
frames 3
screenshot docs/attention.png
attention token 45 from
attention zoom 24 8 24
frames 3
screenshot docs/attention-zoom.png
attention fit
attention token 27 to
attention hover 52 27
frames 3
screenshot docs/attention-tokens.png
attention scroll 1
frames 3
screenshot docs/attention-grid.png
quit
SCRIPT
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/attention.db" --model assets/wordnet-chat \
  --script "$work/attention.script"
# The benchmark workbench: a short run of the bundled model on this device beside the H200 runs
# `qwenvk bench export` wrote there (test data); the table with the tokens/s chart, then the
# H200 F16 run's decode step: its kernel shares and its roofline.
cat >"$work/bench.script" <<SCRIPT
wait-model
bench open
bench set p 16
bench set n 4
bench set repetitions 2
bench run
wait-bench
bench import tests/data/bench/qwenvk-h200-qwen2.5-0.5B.json
bench clear
bench toggle 2
bench toggle 1
frames 3
screenshot docs/bench-speed.png
bench row 1
bench chart kernels
frames 3
screenshot docs/bench-kernels.png
bench chart roofline
frames 3
screenshot docs/bench-roofline.png
quit
SCRIPT
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/bench.db" --model assets/wordnet-chat \
  --script "$work/bench.script"
# The app as the client of `qwenvk serve` (the bundled model on a free port): Settings > Engines
# with that server chosen (applied first: the panel opens sized to what it shows); then the server killed once a reply has begun, the partial reply kept
# and the banner saying why.
"$build/qwenvk" serve --model assets/wordnet-chat --port 0 2>"$work/serve.log" &
serve=$!
until url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.log"); do
  kill -0 "$serve" || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done
cat >"$work/remote.script" <<SCRIPT
wait-model
engine remote $url/v1
open settings
frames 3
screenshot docs/engines.png
close
new-chat
set temperature 0
set max_new_tokens 100000
send Tell me about the sea, the harbor and the ships
wait-reply
frames 3
screenshot docs/remote-interrupted.png
quit
SCRIPT
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/remote.db" --model assets/wordnet-chat \
  --script "$work/remote.script" &
app=$!
assistant_text="SELECT coalesce(max(length(content)), 0) FROM messages WHERE role = 'assistant'"
until [ "$(sqlite3 "$work/remote.db" "$assistant_text" 2>/dev/null || echo 0)" -ge 20 ]; do sleep 0.2; done
kill -9 "$serve"
wait "$app"
# A reply that thought before it answered, its thinking opened above the answer and the thinking
# switch at the top, on the tiny Qwen3 fixture (its template is Qwen3's); the reply is imported,
# as the fixture's own replies are noise. Cropped to the chat.
mkdir "$work/Qwen3-tiny"
ln -s "$PWD"/tests/data/family/qwen3-tiny/* "$PWD"/tests/data/family/qwen3-tokenizer/tokenizer*.json "$work/Qwen3-tiny/"
cat >"$work/thinking.json" <<'JSON'
{"format": "qwenvk-conversation", "version": 2, "title": "Why is the sky blue?", "current_leaf": 2,
 "messages": [{"id": 1, "parent": null, "role": "user", "content": "Why is the sky blue?"},
  {"id": 2, "parent": 1, "role": "assistant", "content": "<think>\nThe user asks why the sky is blue. Sunlight holds every colour; air molecules scatter short wavelengths far more than long ones (Rayleigh scattering, about 1/wavelength^4), so blue light reaches the eye from every direction of the sky.\n</think>\n\nBecause air scatters **blue** light much more than red light, the whole sky glows blue."}]}
JSON
cat >"$work/thinking.script" <<SCRIPT
wait-model
import $work/thinking.json
wait-branch
thinking open 1
frames 3
screenshot $work/thinking.png
quit
SCRIPT
xvfb-run -a -s "-screen 0 1280x800x24" "$build/qwenvk" --db "$work/thinking.db" --model "$work/Qwen3-tiny" \
  --script "$work/thinking.script"
scripts/dev/crop_png.py "$work/thinking.png" docs/thinking.png 268 66 1012 268
echo "wrote docs/chat.png docs/search.png docs/settings.png docs/conversation-settings.png docs/welcome.png" \
  "docs/damaged-database.png docs/attention.png docs/attention-zoom.png docs/attention-tokens.png" \
  "docs/attention-grid.png docs/bench-speed.png docs/bench-kernels.png docs/bench-roofline.png" \
  "docs/engines.png docs/remote-interrupted.png docs/thinking.png"
