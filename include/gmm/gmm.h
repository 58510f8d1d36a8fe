/* SPDX-License-Identifier: MIT */
/*
 * gmm/gmm.h - everything of libgmm's public API.
 */
#ifndef GMM_GMM_H
#define GMM_GMM_H

#include <gmm/backing.h>
#include <gmm/pool.h>
#include <gmm/stats.h>
#include <gmm/memfd.h>
#include <gmm/report.h>
#include <gmm/guest.h>
#include <gmm/thread.h>
#include <gmm/migrate.h>
#include <gmm/compact.h>
#include <gmm/cma.h>

#endif
