import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FAULT_KINDS, type FaultKind, runFault } from './faults/harness.ts'
import { faultDetails } from './faults/table.ts'

/**
 * The fault suite, one run of each fault (npm run faults runs many): real node processes, a
 * real redis-server, FerretDB and versitygw, app devices on mqtt.js and plain mosquitto_sub.
 * Every message whose PUBACK reached its sender is in the store and reaches every member device
 * with a persistent session after its first reconnect, over MQTT alone, in seq order, no seq
 * twice as a first delivery; and presence ends right for every user. test/faults/harness.ts
 * has the details.
 */

// A run takes 10-70 s on a 2-core machine (FerretDB's restart is the slowest: its clients take a
// while to come back); the bound covers a loaded CI machine, and the run itself stops (and cleans
// up) a little before it.
const TIMEOUT_MS: Record<FaultKind, number> = {
  'kill-sender-node': 100_000,
  'kill-receiver-node-early': 100_000,
  'kill-receiver-node-late': 100_000,
  'redis-restart-3s': 100_000,
  'redis-restart-10s': 120_000,
  'sigterm-under-traffic': 120_000,
  'mongo-stop-5s': 150_000,
  'embedded-kill': 80_000,
}
const CLEANUP_MARGIN_MS = 15_000

describe('faults: no acknowledged message lost, repeated or reordered, and presence right', () => {
  for (const kind of FAULT_KINDS) {
    const timeout = TIMEOUT_MS[kind]
    it(kind, { timeout }, async (t) => {
      const r = await runFault(kind, {
        log: (line) => t.diagnostic(line),
        signal: AbortSignal.any([t.signal, AbortSignal.timeout(timeout - CLEANUP_MARGIN_MS)]),
      })
      const details = faultDetails([r])
      assert.ok(r.completed, `the run did not complete: ${r.error}`)
      assert.deepEqual(
        {
          missingInStore: r.missingInStore,
          missingAtDevices: r.missingAtDevices,
          seqTwice: r.twice,
          outOfOrder: r.outOfOrder,
          presenceWrong: r.presenceWrong,
          faultProblems: r.problems,
        },
        {
          missingInStore: 0,
          missingAtDevices: 0,
          seqTwice: 0,
          outOfOrder: 0,
          presenceWrong: false,
          faultProblems: [],
        },
        `${r.acked} acked of ${r.sent} sent; ${r.dupRedeliveries} DUP=1 redeliveries\n${details}`,
      )
    })
  }
})
