"""The generator of the reference's tables (`make docs`); the pages themselves are Markdown."""
