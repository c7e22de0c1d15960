import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { NatterClient } from '../client-sdk/src/index.ts'
import { ServerBanner, useServerReach } from './components/ServerBanner.tsx'
import { Shell } from './components/Shell.tsx'
import { SignIn } from './components/SignIn.tsx'
import {
  connectSession,
  endSession,
  hasUnsent,
  newSession,
  type Session,
  savedSession,
  signOutOtherWebSessions,
  tooManyDevices,
} from './session.ts'
import { uploadsGoing } from './uploads.ts'

// The web chat served by `npm start`: Preact over the client SDK, signed in with dev tokens.

function Root() {
  const [client, setClient] = useState<NatterClient | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  /** The session refused at the server's device cap, for "Sign out my other web sessions". */
  const [capped, setCapped] = useState<Session | null>(null)
  /** Sign-ins that could not reach the server: each makes the banner ask the server again. */
  const [unreached, setUnreached] = useState(0)
  /** A session that could not connect, to try again once the server answers. */
  const [waiting, setWaiting] = useState<Session | null>(null)
  const reach = useServerReach(unreached)
  /** `resumed`: the tab's saved session after a reload, which may start without a network. */
  const start = (s: Session, resumed = false) => {
    setBusy(true)
    setError('')
    setWaiting(null)
    setCapped(null)
    connectSession(s, resumed).then(
      (c) => {
        setBusy(false)
        setClient(c)
      },
      (e: Error & { code?: string }) => {
        setBusy(false)
        // fetch fails with a TypeError when nothing answers, the SDK with connect_timeout.
        const unreachable = e instanceof TypeError || e.code === 'connect_timeout'
        if (unreachable) {
          setError('Can’t reach the server: you will be signed in once it answers.')
          setWaiting(s)
          setUnreached((n) => n + 1)
        } else if (tooManyDevices(e)) {
          setError(
            'You are signed in on too many devices or browser tabs. Sign out of one, or sign out your other web sessions here.',
          )
          setCapped(s)
        } else {
          setError(e.message)
        }
      },
    )
  }
  useEffect(() => {
    // A reload keeps the tab signed in, with its device (and the outbox that waits there).
    const saved = savedSession()
    if (saved) start(saved, true)
  }, [])
  useEffect(() => {
    if (reach === 'reachable' && waiting && !busy) start(waiting)
  }, [reach, waiting])
  useEffect(() => {
    if (!client) return
    // A message still in the outbox goes out from the next tab of this device, but only if one
    // is opened: closing the last one while offline should not pass unnoticed. A file still
    // uploading is lost with the page.
    const warn = (e: BeforeUnloadEvent) => {
      if (hasUnsent(client) || uploadsGoing()) e.preventDefault()
    }
    addEventListener('beforeunload', warn)
    return () => removeEventListener('beforeunload', warn)
  }, [client])
  if (client) {
    return (
      <Shell
        client={client}
        onSignOut={() => {
          endSession(client).finally(() => location.reload())
        }}
      />
    )
  }
  return (
    <>
      <ServerBanner reach={reach} />
      <SignIn
        busy={busy}
        error={error}
        onSignIn={(name) => start(newSession(name))}
        onFreeDevices={
          capped
            ? () => {
                setBusy(true)
                signOutOtherWebSessions(capped.userId).then(
                  () => start(capped),
                  (e: Error) => {
                    setBusy(false)
                    setError(`Could not sign out your other web sessions: ${e.message}`)
                  },
                )
              }
            : undefined
        }
      />
    </>
  )
}

const root = document.getElementById('root')
if (root) render(<Root />, root)
