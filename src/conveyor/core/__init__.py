"""Domain core: entities, schemas, errors and time. Imports nothing else of Conveyor."""
