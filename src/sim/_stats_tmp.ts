import { runSeed } from "./simulator.ts";
import { DEFAULT_OPTIONS } from "./options.ts";
const t = performance.now();
let v = 0, ack = 0;
for (let s = 1; s <= 20; s++) {
  const r = await runSeed({ ...DEFAULT_OPTIONS, seed: s });
  if (r.violation) {
    v++;
    console.log(s, r.violation);
  }
  ack += r.stats.acknowledged;
}
console.log(
  "20 seeds",
  Math.round(performance.now() - t),
  "ms",
  v,
  "violations",
  ack,
  "acks",
);
