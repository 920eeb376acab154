//! Every kind of error names file, resource, path and what is allowed.

use super::*;
