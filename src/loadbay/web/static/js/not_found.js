// A page that names nothing: the shell only (sign in, the account, sign out).

import { boot } from "./shell.js";

boot(async () => {});
