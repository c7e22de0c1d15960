import assert from 'node:assert/strict'
import { it } from 'node:test'
import { MongoClient } from 'mongodb'
import { MongoMediaCatalog } from '../services/media/mongo-media-catalog.ts'
import { mediaCatalogContract } from './contract/media-catalog.contract.ts'
import { startFerretDb } from './helpers/ferretdb.ts'
import { mongoHarness } from './helpers/store-harness.ts'

mediaCatalogContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoMediaCatalog.open(uri)))

it('replaces the unique index of a catalog made when it was per checksum alone (FerretDB)', async () => {
  const ferret = await startFerretDb()
  const raw = new MongoClient(ferret.uri)
  try {
    // The catalog as it was before content type and size were part of the key.
    await raw
      .db()
      .collection('media')
      .createIndex({ uploaderId: 1, sha256: 1 }, { name: 'uploader_sha', unique: true })
    const catalog = await MongoMediaCatalog.open(ferret.uri)
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
    const names = (await raw.db().collection('media').listIndexes().toArray()).map((i) => i.name as string)
    assert.deepEqual(names.sort(), ['_id_', 'status', 'uploader_bytes'])
  } finally {
    await raw.close()
    await ferret.stop()
  }
})
