import { SqliteMediaCatalog } from '../services/media/sqlite-media-catalog.ts'
import { mediaCatalogContract } from './contract/media-catalog.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

mediaCatalogContract('SQLite', () => sqliteHarness('media.db', (path) => new SqliteMediaCatalog(path)))
