//! Mask algebra for LED-Merging (Elect and Disjoint). Filled in by the mask-algebra issue.
