import pino, { type Logger } from 'pino'

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'natter' },
    // Passwords are tokens: never log one, whichever object carries it.
    redact: { paths: ['password', '*.password', 'token', '*.token'], censor: '[redacted]' },
  })
}
