import { MongoBlockStore } from '../services/blocks/mongo-block-store.ts'
import { blockStoreContract } from './contract/block-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

blockStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoBlockStore.open(uri)))
