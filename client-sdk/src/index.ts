export { type ConnectOptions, connect, type NatterConnection } from './connect.ts'
export { NatterRequestError, request } from './request.ts'
export { clientIdOf, topics } from './topics.ts'
