from containerfs.runtime.main import main

main()
