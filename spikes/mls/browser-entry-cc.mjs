import * as cc from "@wireapp/core-crypto/browser"
import { runFlowCC } from "./flow-cc.mjs"
window.__run = async () => {
  const lines = []
  const t0 = performance.now()
  try {
    await cc.initWasmModule("/index_bg.wasm")
    const initMs = performance.now() - t0
    lines.push(`initWasmModule: ${initMs.toFixed(1)} ms`)
    const fig = await runFlowCC(cc, (l) => lines.push(l), (id) => cc.Database.open(`natter-${id}`, new cc.DatabaseKey(crypto.getRandomValues(new Uint8Array(32)))))
    fig.wasmInitMs = initMs
    fig.totalMs = performance.now() - t0
    return { ok: true, fig, lines }
  } catch (e) { return { ok: false, error: String(e && (e.stack || e.message) || e) + " " + JSON.stringify(e), lines } }
}
