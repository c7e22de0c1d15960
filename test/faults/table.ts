import type { FaultResult } from './harness.ts'
import type { FaultKind } from './kinds.ts'

const COLUMNS = [
  'fault',
  'runs',
  'acked',
  'missing in store',
  'missing at devices after first reconnect',
  'seq twice (DUP=0)',
  'out of order',
  'DUP=1 redeliveries',
  'presence wrong (runs)',
  'fault problems (runs)',
  'incomplete runs',
]

/** The markdown table of a series of runs, one line per fault, sums over its runs. */
export function faultTable(results: FaultResult[], kinds: FaultKind[]): string {
  const lines = [
    `| ${COLUMNS.join(' | ')} |`,
    `| ${COLUMNS.map((_c, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
  ]
  for (const kind of kinds) {
    const rows = results.filter((r) => r.fault === kind)
    if (rows.length === 0) continue
    const sum = (f: (r: FaultResult) => number) => rows.reduce((n, r) => n + f(r), 0)
    const cells = [
      kind,
      rows.length,
      sum((r) => r.acked),
      sum((r) => r.missingInStore),
      sum((r) => r.missingAtDevices),
      sum((r) => r.twice),
      sum((r) => r.outOfOrder),
      sum((r) => r.dupRedeliveries),
      sum((r) => (r.presenceWrong ? 1 : 0)),
      sum((r) => (r.problems.length > 0 ? 1 : 0)),
      sum((r) => (r.completed ? 0 : 1)),
    ]
    lines.push(`| ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** What went wrong, per run: the samples and problems behind the numbers. */
export function faultDetails(results: FaultResult[]): string {
  const out: string[] = []
  for (const r of results) {
    const notes = [
      ...r.problems.map((p) => `fault problem: ${p}`),
      ...r.samples,
      ...(r.error ? [`run did not complete: ${briefly(r.error)}`] : []),
    ]
    if (notes.length === 0) continue
    out.push(
      `- **${r.fault}** (run ${r.tag}, ${Math.round(r.ms / 1000)} s, ${r.acked} acked of ${r.sent} sent${r.failed ? `, ${r.failed} failed in mqtt.js` : ''})`,
    )
    for (const n of notes) out.push(`  - ${n}`)
  }
  return out.join('\n')
}

/** The first line of an error, and the lines of a process's output that say what failed. */
function briefly(error: string): string {
  const [first = '', ...rest] = error.split('\n')
  const telling = rest.filter((l) => /^natter: |"level":[56]0|Error:/.test(l)).slice(0, 3)
  return [first, ...telling].map((l) => l.slice(0, 300)).join(' / ')
}
