/**
 * What search matches on (segmentation, folding, query parsing): one module shared with the
 * client SDK, which searches encrypted chats on the device by the same rules
 * (docs/e2ee.md §11). It lives in client-sdk/src/search-terms.ts because the SDK is a
 * package of its own that cannot import the server; the server imports it from here.
 */
export * from '../../client-sdk/src/search-terms.ts'
