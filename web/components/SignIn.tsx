import { useState } from 'preact/hooks'

/** Sign in with any name (dev tokens: the embedded default only). */
export function SignIn({
  onSignIn,
  error,
  busy,
  onFreeDevices,
}: {
  onSignIn: (name: string) => void
  error: string
  busy: boolean
  /** Shown as "Sign out my other web sessions" when the sign-in hit the device cap. */
  onFreeDevices?: (() => void) | undefined
}) {
  const [name, setName] = useState('')
  return (
    <main>
      <form
        id="login"
        onSubmit={(e) => {
          e.preventDefault()
          onSignIn(name.trim())
        }}
      >
        <h1>Natter</h1>
        <p>Sign in with any name. Dev tokens: the embedded default only.</p>
        <label for="name">Your name</label>
        <input
          id="name"
          autocomplete="username"
          placeholder="e.g. alice"
          required
          maxLength={64}
          pattern="[A-Za-z0-9._@:\-]{1,64}"
          title="1 to 64 letters, digits or . _ @ : -"
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p id="login-error" role="alert">
          {error}
        </p>
        {onFreeDevices && (
          <button type="button" id="free-devices" disabled={busy} onClick={onFreeDevices}>
            Sign out my other web sessions
          </button>
        )}
      </form>
    </main>
  )
}
