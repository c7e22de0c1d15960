// The fault suite (npm run faults): N runs of each fault, one after the other, against real
// processes; prints a markdown table of what each fault did to acknowledged messages, and writes
// it to test-output/faults.md. Options: --runs=N (10), --only=kind,kind, --rate=N (messages/s, 20),
// --quiet (no progress lines on stderr). Runs with findings leave their processes' output in
// test-output/faults/<fault>-<run>/. Exits with 1 when any run found anything.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { FAULT_KINDS, type FaultResult, findings, isFaultKind, runFault } from '../test/faults/harness.ts'
import { faultDetails, faultTable } from '../test/faults/table.ts'
import { ROOT } from '../test/helpers/processes.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    only: { type: 'string' },
    rate: { type: 'string', default: '20' },
    quiet: { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
const rate = Number(values.rate)
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`)
if (!(rate > 0)) throw new Error(`--rate must be a positive number, got ${values.rate}`)
const only = values.only?.split(',').map((s) => s.trim()) ?? FAULT_KINDS
const unknown = only.filter((k) => !isFaultKind(k))
if (unknown.length > 0)
  throw new Error(`unknown fault ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}`)
const kinds = FAULT_KINDS.filter((k) => only.includes(k))

const outDir = join(ROOT, 'test-output')
const logDir = join(outDir, 'faults')
mkdirSync(logDir, { recursive: true })
const log = (line: string) => {
  if (!values.quiet) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
}

const started = Date.now()
const results: FaultResult[] = []
for (const kind of kinds) {
  for (let i = 1; i <= runs; i++) {
    log(`${kind}: run ${i} of ${runs}`)
    results.push(await runFault(kind, { perSecond: rate, log, logDir }))
  }
}
const wall = Math.round((Date.now() - started) / 1000)
const table = faultTable(results, kinds)
const details = faultDetails(results)
const report = [
  `# Fault suite`,
  '',
  `${runs} run(s) of each fault, ${rate} messages/s, ${new Date().toISOString()}; wall time ${Math.floor(wall / 60)} min ${wall % 60} s.`,
  '',
  table,
  '',
  ...(details ? ['## Findings', '', details, ''] : []),
].join('\n')
writeFileSync(join(outDir, 'faults.md'), report)
process.stdout.write(`${table}\n\nwall time: ${Math.floor(wall / 60)} min ${wall % 60} s\n`)
if (details) process.stdout.write(`\n${details}\n`)
process.stdout.write(`\n(written to test-output/faults.md)\n`)
// Exit code 1 when any run found anything (or did not complete); timers of mqtt.js clients or
// child processes must not keep a finished series alive either way.
process.exit(results.some((r) => findings(r) || !r.completed) ? 1 : 0)
