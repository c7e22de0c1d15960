import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { NatterClient } from '../client-sdk/src/index.ts'
import { Shell } from './components/Shell.tsx'
import { SignIn } from './components/SignIn.tsx'
import { connectSession, forgetSession, newSession, type Session, savedSession } from './session.ts'

// The web chat served by `npm start`: Preact over the client SDK, signed in with dev tokens.

function Root() {
  const [client, setClient] = useState<NatterClient | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const start = (s: Session) => {
    setBusy(true)
    setError('')
    connectSession(s).then(
      (c) => {
        setBusy(false)
        setClient(c)
      },
      (e: Error) => {
        setBusy(false)
        setError(e.message)
      },
    )
  }
  useEffect(() => {
    // A reload keeps the tab signed in, with its device (and the outbox that waits there).
    const saved = savedSession()
    if (saved) start(saved)
  }, [])
  if (client) {
    return (
      <Shell
        client={client}
        onSignOut={() => {
          forgetSession()
          client.close().finally(() => location.reload())
        }}
      />
    )
  }
  return <SignIn busy={busy} error={error} onSignIn={(name) => start(newSession(name))} />
}

const root = document.getElementById('root')
if (root) render(<Root />, root)
