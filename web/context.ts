import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { NatterClient } from '../client-sdk/src/index.ts'
import type { Names } from './names.ts'

/** What every component of a signed-in page shares: the client, who is signed in, the names. */
export interface AppContext {
  client: NatterClient
  me: string
  names: Names
  /** Says something to screen readers (the page's polite live region). */
  announce: (text: string) => void
}

export const App = createContext<AppContext | null>(null)

export function useApp(): AppContext {
  const app = useContext(App)
  if (!app) throw new Error('useApp outside the signed-in app')
  return app
}
