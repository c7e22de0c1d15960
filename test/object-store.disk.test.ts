import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { DISK_OBJECT_PATH, DiskObjectStore } from '../services/media/disk-object-store.ts'
import { objectStoreContract } from './contract/object-store.contract.ts'

objectStoreContract('disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-disk-media-'))
  let store: DiskObjectStore | undefined
  const server = createServer((req, res) => {
    if (store && req.url?.startsWith(DISK_OBJECT_PATH)) {
      store.serve(req, res).catch(() => res.destroy())
    } else res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  store = new DiskObjectStore({ dir, baseUrl: `http://127.0.0.1:${port}` })
  const s = store
  return {
    store: s,
    cleanup: async () => {
      await s.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
})

describe('disk store URLs in a browser', () => {
  it('answers the CORS preflight of an upload from a web page on another origin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-disk-cors-'))
    const store = new DiskObjectStore({ dir, baseUrl: 'http://127.0.0.1:1' })
    const server = createServer((req, res) => void store.serve(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const res = await fetch(`http://127.0.0.1:${port}${DISK_OBJECT_PATH}m/x`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://app.example',
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'content-type, x-amz-checksum-sha256',
        },
      })
      assert.equal(res.status, 204)
      assert.equal(res.headers.get('access-control-allow-origin'), '*')
      assert.match(res.headers.get('access-control-allow-methods') ?? '', /PUT/)
      assert.match(res.headers.get('access-control-allow-headers') ?? '', /x-amz-checksum-sha256/)
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
