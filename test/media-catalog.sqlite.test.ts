import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { it } from 'node:test'
import { SqliteMediaCatalog } from '../services/media/sqlite-media-catalog.ts'
import { mediaCatalogContract } from './contract/media-catalog.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

mediaCatalogContract('SQLite', () => sqliteHarness('media.db', (path) => new SqliteMediaCatalog(path)))

it('replaces the unique index of a catalog made when it was per checksum alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-media-index-'))
  try {
    const path = join(dir, 'media.db')
    await new SqliteMediaCatalog(path).close()
    // The catalog as it was before content type and size were part of the key.
    const old = new DatabaseSync(path)
    old.exec(
      'DROP INDEX media_uploader_bytes; CREATE UNIQUE INDEX media_uploader_sha ON media (uploader_id, sha256);',
    )
    old.close()
    const catalog = new SqliteMediaCatalog(path)
    const m = {
      uploaderId: 'alice',
      sha256: 'a'.repeat(64),
      size: 16,
      name: null,
      createdAt: 1,
      expiresAt: 2,
      durationMs: null,
    }
    await catalog.begin({ ...m, id: 'm1', contentType: 'text/plain', kind: 'file' })
    const beside = await catalog.begin({ ...m, id: 'm2', contentType: 'image/jpeg', kind: 'image' })
    assert.equal(beside.created, true)
    await catalog.close()
    const db = new DatabaseSync(path)
    const names = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'media'")
      .all()
    db.close()
    // sqlite_autoindex_media_1 is the primary key's.
    assert.deepEqual(names.map((r) => r.name).sort(), [
      'media_status',
      'media_uploader_bytes',
      'sqlite_autoindex_media_1',
    ])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
