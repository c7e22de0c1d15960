import { runFlow } from "./flow-tsmls.mjs"
const t0 = performance.now()
const fig = await runFlow()
fig.node = process.version
fig.totalMs = performance.now() - t0
console.log(JSON.stringify(fig, null, 1))
