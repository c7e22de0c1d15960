import { MongoMediaCatalog } from '../services/media/mongo-media-catalog.ts'
import { mediaCatalogContract } from './contract/media-catalog.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

mediaCatalogContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoMediaCatalog.open(uri)))
