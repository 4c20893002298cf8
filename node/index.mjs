// The ESM entry: the same module as index.js (one addon instance per process).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const sr = require('./index.js')

export const {
  Store,
  ClientDriver,
  ServerDriver,
  RoutingState,
  setLogger,
  errorCodes,
  defaultBaseConfig,
  defaultStoreConfig,
  serverInfoFromEnv,
  stopOnSignal,
} = sr
export default sr
