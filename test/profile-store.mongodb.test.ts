import { MongoProfileStore } from '../services/profiles/mongo-profile-store.ts'
import { profileStoreContract } from './contract/profile-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

profileStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoProfileStore.open(uri)))
