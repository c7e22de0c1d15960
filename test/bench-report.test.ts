import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { anchors, type Row } from '../bench/report.ts'

const step = (scenario: string, target: string, delivered: number, cpuUsPerMsg: number): Row => ({
  scenario,
  target,
  offered: 'max',
  delivered,
  loss: 0,
  p50: 1,
  p99: 2,
  p999: 3,
  cpuUsPerMsg,
  rssMb: 100,
  generatorCpu: 0.5,
  brokerCores: (delivered * cpuUsPerMsg) / 1e6,
  mainThreadCores: 0.9,
  machineCores: 1.9,
})

const idle = (target: string, rssKb: number, heapKb?: number): Row => ({
  scenario: '10000 idle connections',
  target,
  offered: '10000',
  delivered: 1000,
  loss: 0,
  p50: Number.NaN,
  p99: Number.NaN,
  p999: Number.NaN,
  cpuUsPerMsg: 0,
  rssMb: 300,
  generatorCpu: 0,
  rssKbPerConn: rssKb,
  ...(heapKb === undefined ? {} : { heapKbPerConn: heapKb }),
})

describe('the benchmark against its anchors', () => {
  it('compares chat and relay at "max" with aedes and mosquitto relaying QoS 1', () => {
    const rows = [
      step('relay QoS 1', 'mosquitto', 50_000, 10),
      step('relay QoS 1', 'aedes', 40_000, 20),
      step('relay QoS 1', 'natter', 30_000, 25),
      { ...step('relay QoS 1', 'aedes', 5000, 60), offered: '5000' },
      step('chat 1:1 (SQLite)', 'natter', 10_000, 80),
    ]
    const { md, json } = anchors(rows)
    assert.deepEqual(json.ratios['chat 1:1 / aedes relay QoS 1'], { msgPerS: 0.25, cpuUsPerMsg: 4 })
    assert.deepEqual(json.ratios['chat 1:1 / mosquitto relay QoS 1'], { msgPerS: 0.2, cpuUsPerMsg: 8 })
    assert.deepEqual(json.ratios['natter / aedes, relay QoS 1'], { msgPerS: 0.75, cpuUsPerMsg: 1.25 })
    assert.equal(json.max['relay QoS 1, aedes']?.msgPerS, 40_000)
    assert.match(md, /\| chat 1:1 \/ aedes relay QoS 1 \| 0\.25× \| 4\.00× \|/)
    assert.equal(json.idle, undefined)
  })

  it('says so when a run has no anchor for its chat steps', () => {
    const { md, json } = anchors([step('chat 1:1 (SQLite)', 'natter', 10_000, 80)])
    assert.deepEqual(json.ratios, {})
    assert.match(md, /No ratios/)
  })

  it('gives memory per idle connection and Natter over plain aedes', () => {
    const { md, json } = anchors([idle('mosquitto', 1), idle('aedes', 10, 8), idle('natter', 15, 12)])
    assert.equal(json.idle?.connections, 10_000)
    assert.deepEqual(json.idle?.natterOverAedes, { heap: 1.5, rss: 1.5 })
    assert.deepEqual(json.idle?.perConn.mosquitto, { heapKb: undefined, rssKb: 1 })
    assert.match(md, /\| natter \/ aedes \| 1\.50× \| 1\.50× \|/)
    assert.doesNotMatch(md, /at "max"/)
  })
})
