"""Code shared by every function, in layers: `domain` (the task and its rules), `adapters` (AWS and in-memory
implementations of the domain's ports), `services` (what the functions do), `http` (the API's side). Task modules
import `core.registry` and `core.errors`, which stay at the top: the API a task author writes against."""
