import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { createLogger } from '../../broker/log.ts'
import { type NatterNode, startNode } from '../../broker/node.ts'
import { loadConfig } from '../../config/load.ts'
import { localNodeEnv } from './processes.ts'

export interface TestNode {
  node: NatterNode
  mqttUrl: string
  wsUrl: string
  httpUrl: string
  /** The node's data directory (its SQLite files on the embedded default). */
  dataDir: string
  secret: Uint8Array
  /** A valid HS256 token for the node, with overrides for the negative tests. */
  token(userId: string, o?: { expiresInSeconds?: number; alg?: string; secret?: Uint8Array }): Promise<string>
  close(): Promise<void>
}

/** One in-process node on free ports, a fresh data directory and a random secret. */
export async function startTestNode(env: Record<string, string> = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-test-'))
  const secretText = randomBytes(32).toString('hex')
  const { settings } = loadConfig({
    env: {
      ...localNodeEnv(dataDir, secretText),
      NATTER_LOG_LEVEL: process.env.NATTER_TEST_LOG_LEVEL ?? 'silent',
      ...env,
    },
  })
  const node = await startNode(settings, createLogger(settings.logLevel))
  const secret = new TextEncoder().encode(secretText)
  return {
    node,
    mqttUrl: `mqtt://127.0.0.1:${node.ports.mqtt}`,
    wsUrl: `ws://127.0.0.1:${node.ports.ws}${settings.wsPath}`,
    httpUrl: `http://127.0.0.1:${node.ports.http}`,
    dataDir: settings.dataDir,
    secret,
    token: (userId, o = {}) =>
      new SignJWT({})
        .setProtectedHeader({ alg: o.alg ?? 'HS256' })
        .setSubject(userId)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + (o.expiresInSeconds ?? 3600))
        .sign(o.secret ?? secret),
    close: async () => {
      await node.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
