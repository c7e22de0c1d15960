import * as cc from "@wireapp/core-crypto/native"
import { runFlowCC } from "./flow-cc.mjs"
import { mkdtempSync } from "node:fs"
const dir = mkdtempSync("/tmp/mls-eval/ccdb-")
const t0 = performance.now()
const fig = await runFlowCC(cc, console.log, (id) => cc.Database.open(`${dir}/${id.replace("/", "_")}.db`, new cc.DatabaseKey(crypto.getRandomValues(new Uint8Array(32)))))
fig.node = process.version
fig.totalMs = performance.now() - t0
console.log(JSON.stringify(fig, null, 1))
process.exit(0)
