/* placeholder: the console's pages land with docs/console.md's pages */
