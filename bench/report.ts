import type { MemoryUsage } from './heap.ts'

/** The benchmark's results: one row per step, and the Markdown tables made of them. */

export interface Row {
  scenario: string
  target: string
  offered: string
  delivered: number
  loss: number
  p50: number
  p99: number
  p999: number
  cpuUsPerMsg: number
  rssMb: number
  generatorCpu: number
  /** What delivered counts: messages (the default) or requests (history pages). */
  unit?: 'requests'
  /** Stream steps: the broker's CPU while delivering, in cores (CPU time over the measured span). */
  brokerCores?: number
  /** Stream steps: the same for the broker's main thread (its JavaScript; all of mosquitto). */
  mainThreadCores?: number
  /** Stream steps: the whole machine's busy CPU over the same span, in cores (others' too). */
  machineCores?: number
  /** Idle rows: RSS growth per connection. */
  rssKbPerConn?: number
  /** Idle rows of Node targets: live heap (heapUsed + external) growth per connection, after GC. */
  heapKbPerConn?: number
  /** Idle rows of Node targets: process.memoryUsage() after two full GCs, before and after. */
  memory?: { before: MemoryUsage; after: MemoryUsage }
}

export const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–')

export function table(rows: Row[]): string {
  const out = [
    '| scenario | target | offered msg/s | delivered msg/s | not delivered at the end | p50 ms | p99 ms | p99.9 ms | broker CPU µs/msg | broker RSS MB | generator CPU |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const r of rows) {
    if (r.scenario.includes('idle')) {
      const heap = r.heapKbPerConn === undefined ? '' : `live heap ${fmt(r.heapKbPerConn)} KB/conn, `
      out.push(
        `| ${r.scenario} | ${r.target} | – | ${r.delivered} conn/s | – | – | – | – | – | ${heap}RSS ${fmt(r.rssKbPerConn ?? Number.NaN)} KB/conn | – |`,
      )
    } else if (r.unit === 'requests') {
      out.push(
        `| ${r.scenario} | ${r.target} | ${r.offered} | ${r.delivered} requests/s | – | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.p999, 2)} | ${fmt(r.cpuUsPerMsg)} µs/request | ${fmt(r.rssMb, 0)} | – |`,
      )
    } else if (r.scenario.includes('fan-out')) {
      out.push(
        `| ${r.scenario} | ${r.target} | – | ${r.delivered} members reached | ${fmt(r.loss * 100)}% | ${fmt(r.p50)} | last: ${fmt(r.p99)} | – | – | ${fmt(r.rssMb, 0)} | – |`,
      )
    } else {
      out.push(
        `| ${r.scenario} | ${r.target} | ${r.offered} | ${r.delivered} | ${fmt(r.loss * 100, 2)}% | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.p999, 2)} | ${fmt(r.cpuUsPerMsg)} | ${fmt(r.rssMb, 0)} | ${fmt(r.generatorCpu * 100, 0)}% |`,
      )
    }
  }
  return out.join('\n')
}

export interface Anchors {
  /** "max" steps: delivered msg/s, broker CPU µs per message and in cores. */
  max: Record<
    string,
    {
      msgPerS: number
      cpuUsPerMsg: number
      brokerCores: number
      mainThreadCores: number
      machineCores: number
    }
  >
  /** Natter's figure over an anchor's: msg/s and CPU µs per message. */
  ratios: Record<string, { msgPerS: number; cpuUsPerMsg: number }>
  idle?: {
    connections: number
    perConn: Record<string, { heapKb?: number; rssKb: number }>
    natterOverAedes?: { heap: number; rss: number }
  }
}

/** Natter at saturation and idle next to plain aedes and mosquitto in the same run. */
export function anchors(rows: Row[]): { md: string; json: Anchors } {
  const at = (scenario: string, target: string) =>
    rows.find((r) => r.scenario === scenario && r.target === target && r.offered === 'max')
  const steps: Array<[string, Row | undefined]> = [
    ['chat 1:1 (SQLite), natter', at('chat 1:1 (SQLite)', 'natter')],
    ['relay QoS 1, natter', at('relay QoS 1', 'natter')],
    ['relay QoS 1, aedes', at('relay QoS 1', 'aedes')],
    ['relay QoS 1, mosquitto', at('relay QoS 1', 'mosquitto')],
  ]
  const json: Anchors = { max: {}, ratios: {} }
  const md: string[] = []
  const found = steps.filter((s): s is [string, Row] => s[1] !== undefined)
  const ratio = (a: number, b: number) => `${fmt(a / b, 2)}×`
  if (found.length > 0) {
    md.push(
      '| at "max" | delivered msg/s | broker CPU µs/msg | broker CPU, cores | its main thread, cores | machine busy, cores |',
      '|---|---|---|---|---|---|',
    )
    for (const [name, r] of found) {
      json.max[name] = {
        msgPerS: r.delivered,
        cpuUsPerMsg: r.cpuUsPerMsg,
        brokerCores: r.brokerCores ?? 0,
        mainThreadCores: r.mainThreadCores ?? 0,
        machineCores: r.machineCores ?? 0,
      }
      md.push(
        `| ${name} | ${r.delivered} | ${fmt(r.cpuUsPerMsg)} | ${fmt(r.brokerCores ?? Number.NaN, 2)} | ${fmt(r.mainThreadCores ?? Number.NaN, 2)} | ${fmt(r.machineCores ?? Number.NaN, 2)} |`,
      )
    }
    const [chat, relay, aedes, mosquitto] = steps.map((s) => s[1])
    for (const [name, a, b] of [
      ['chat 1:1 / aedes relay QoS 1', chat, aedes],
      ['chat 1:1 / mosquitto relay QoS 1', chat, mosquitto],
      ['natter / aedes, relay QoS 1', relay, aedes],
    ] as const) {
      if (!a || !b) continue
      json.ratios[name] = { msgPerS: a.delivered / b.delivered, cpuUsPerMsg: a.cpuUsPerMsg / b.cpuUsPerMsg }
      md.push(
        `| ${name} | ${ratio(a.delivered, b.delivered)} | ${ratio(a.cpuUsPerMsg, b.cpuUsPerMsg)} | – | – | – |`,
      )
    }
    if (Object.keys(json.ratios).length === 0)
      md.push('', 'No ratios: they need the relay part and the chat part in the same run.')
  }
  const idle = rows.filter((r) => r.scenario.includes('idle connections'))
  if (idle.length) {
    const n = Number(idle[0]?.offered)
    json.idle = { connections: n, perConn: {} }
    if (md.length) md.push('')
    md.push(`| ${n} idle connections | live heap KB/conn | RSS KB/conn |`, '|---|---|---|')
    for (const r of idle) {
      json.idle.perConn[r.target] = { heapKb: r.heapKbPerConn, rssKb: r.rssKbPerConn ?? Number.NaN }
      md.push(
        `| ${r.target} | ${fmt(r.heapKbPerConn ?? Number.NaN)} | ${fmt(r.rssKbPerConn ?? Number.NaN)} |`,
      )
    }
    const natter = idle.find((r) => r.target === 'natter')
    const aedes = idle.find((r) => r.target === 'aedes')
    if (natter?.heapKbPerConn !== undefined && aedes?.heapKbPerConn !== undefined) {
      const heap = natter.heapKbPerConn / aedes.heapKbPerConn
      const rss = (natter.rssKbPerConn ?? Number.NaN) / (aedes.rssKbPerConn ?? Number.NaN)
      json.idle.natterOverAedes = { heap, rss }
      md.push(
        `| natter / aedes | ${fmt(heap, 2)}× | ${fmt(rss, 2)}× |`,
        '',
        `The goal for an idle authenticated Natter connection: at most 20 KB of live heap, and at most 1.2× plain aedes' (here ${fmt(natter.heapKbPerConn)} KB, ${fmt(heap, 2)}×).`,
      )
    }
  }
  return { md: md.join('\n'), json }
}
