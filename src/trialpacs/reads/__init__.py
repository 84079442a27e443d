"""Read assignments: a study of a trial given to a reader, who reads and signs it."""
