/* SPDX-License-Identifier: GPL-2.0 */
/* Written from package.json by scripts/sync-version.mjs: do not edit. */
#ifndef TOASIM_VERSION_H
#define TOASIM_VERSION_H

#define TOASIM_VERSION "0.1.0"

#endif
