// Signs and verifies Standard Webhooks messages with the official Node
// package, for the Go tests' cross-check. Reads one JSON request on stdin:
//   {"secret": "whsec_...",
//    "sign":   [{"id": "...", "timestamp": <unix seconds>, "payload": "..."}],
//    "verify": [{"headers": {"webhook-id": ..., ...}, "payload": "..."}]}
// and writes {"signatures": ["v1,..."], "verified": ["" or the error]}.
// The package is loaded from $STANDARDWEBHOOKS_DIR/node_modules.
const path = require("path");
const { Webhook } = require(path.join(process.env.STANDARDWEBHOOKS_DIR, "node_modules", "standardwebhooks"));

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const wh = new Webhook(req.secret);
  const signatures = (req.sign || []).map((m) => wh.sign(m.id, new Date(m.timestamp * 1000), m.payload));
  const verified = (req.verify || []).map((m) => {
    try {
      wh.verify(m.payload, m.headers, { jsonParse: false });
      return "";
    } catch (e) {
      return String(e.message || e);
    }
  });
  process.stdout.write(JSON.stringify({ signatures, verified }));
});
