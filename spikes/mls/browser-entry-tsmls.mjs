import { runFlow } from "./flow-tsmls.mjs"
window.__run = async () => {
  const lines = []
  const t0 = performance.now()
  try {
    // persist bob/phone's state through IndexedDB (write, close, reopen, read) before continuing with it
    const idb = (fn) => new Promise((res, rej) => { const r = indexedDB.open("natter-mls", 1); r.onupgradeneeded = () => r.result.createObjectStore("groups"); r.onerror = () => rej(r.error); r.onsuccess = () => { const db = r.result; const tx = db.transaction("groups", "readwrite"); const q = fn(tx.objectStore("groups")); tx.oncomplete = () => { db.close(); res(q.result) }; tx.onerror = () => rej(tx.error) } })
    const persist = async (bytes) => { await idb((st) => st.put(bytes, "chat-42/bob-phone")); const back = await idb((st) => st.get("chat-42/bob-phone")); lines.push(`  IndexedDB round trip of group state: ${back.byteLength} bytes`); return new Uint8Array(back) }
    const fig = await runFlow((l) => lines.push(l), persist)
    fig.totalMs = performance.now() - t0
    fig.userAgent = navigator.userAgent
    return { ok: true, fig, lines }
  } catch (e) { return { ok: false, error: String(e && e.stack || e), lines } }
}
