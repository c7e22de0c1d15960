import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { S3ObjectStore } from '../services/media/s3-object-store.ts'
import { objectStoreContract } from './contract/object-store.contract.ts'
import { startVersitygw } from './helpers/versitygw.ts'

objectStoreContract('S3 (versitygw)', async () => {
  const s3 = await startVersitygw()
  const store = await S3ObjectStore.open({
    bucket: 'natter-media',
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  })
  return {
    store,
    cleanup: async () => {
      await store.close()
      await s3.stop()
    },
  }
})

describe('S3 bucket at start', () => {
  it('lets nodes that start together all open the bucket one of them creates', async () => {
    const s3 = await startVersitygw()
    try {
      const open = () =>
        S3ObjectStore.open({
          bucket: 'natter-started-together',
          region: s3.region,
          endpoint: s3.endpoint,
          forcePathStyle: true,
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        })
      const stores = await Promise.all([open(), open(), open()])
      assert.equal(stores.length, 3)
      for (const store of stores) await store.close()
    } finally {
      await s3.stop()
    }
  })
})
