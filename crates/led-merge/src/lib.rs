//! Merge operators and the streaming merge engine. Filled in by the merge-engine issue.
