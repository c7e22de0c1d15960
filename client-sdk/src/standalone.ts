/**
 * The one-file build (`@natter/client-sdk/standalone`, dist/browser/natter-sdk.js): everything
 * of the main entry, plus the IndexedDB outbox, which a page without a bundler cannot import
 * from a second file.
 */
export * from './index.ts'
export { IndexedDbMlsStorage, IndexedDbOutboxStorage } from './indexeddb-outbox.ts'
